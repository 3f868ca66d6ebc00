"""Reading the user's training data: formats, validation, statistics, the train/validation split.

Modules: errors (DataError), io (reading files), formats (detection and normalisation into
Examples), inspect (the whole-file report), split, stats (token lengths), build (the rendered
training and validation sets).
"""
