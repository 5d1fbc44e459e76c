"""The local stack on the emulator (`local_stack`, `emulator`), its demo, logs and tokens."""
