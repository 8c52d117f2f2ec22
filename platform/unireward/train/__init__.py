"""Judge and policy training (issues 4 and 5). So far the pieces every training worker will run:

- ``data``: the judge's training data (sampling and mixing rules, targets the judge reads back, the
  original's conversation format);
- ``sft``: judge SFT encoding (the judge's own encoding plus the assistant turn), batching, loss;
- ``losses``: Diffusion-DPO for image and video latents, DPO (sigmoid, IPO, hinge), response log-probs;
- ``diffusion``: a Diffusion-DPO step for diffusers UNet (2D and 3D) pipelines.

The Ray Train + DeepSpeed drivers (``kind: train_reward`` and ``kind: dpo``) come next."""
