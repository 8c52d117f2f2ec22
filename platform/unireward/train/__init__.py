"""Judge and policy training (issues 4 and 5). So far the judge's SFT pieces that every worker will
run: training data (``data``: sampling, mixing, targets, the original's conversation format) and the
encoding, batching and loss (``sft``). The Ray Train + DeepSpeed driver comes next."""
