"""Judge and policy training (issues 4 and 5). So far the pure pieces every training worker will run:
the judge's training data (``data``: sampling, mixing, targets, the original's conversation format),
its SFT encoding, batching and loss (``sft``), and the preference losses for policy alignment
(``losses``: Diffusion-DPO for image and video latents, DPO with sigmoid, IPO and hinge losses).
The Ray Train + DeepSpeed drivers come next."""
