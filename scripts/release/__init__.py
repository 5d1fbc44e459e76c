"""Build the Lambda code and layer zips (`build`) and every artifact of a release (`release`)."""
