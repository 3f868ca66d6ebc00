"""One module per tab of the main window (Dataset, Method, Training, Evaluation)."""
