"""Training the voters: the entry points (train), the torch loops (loops), the rare-label augmentation, the evaluation
fits, the feedback retrain and the scores its promotion gate compares (evaluate)."""
