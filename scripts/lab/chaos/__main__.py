from scripts.lab.chaos.runner import main

main()
