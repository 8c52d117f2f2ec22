"""Judge and policy training on Ray Train + DeepSpeed.

- ``runtime``: what every training worker shares: setup, the DeepSpeed engine and schedule, resume,
  the metric log, the step / evaluate / checkpoint skeleton, the report plot;
- ``data``: the judge's training data (sampling and mixing rules, targets the judge reads back, the
  original's conversation format);
- ``sft``: judge SFT encoding (the judge's own encoding plus the assistant turn), batching, loss;
- ``reward``: judge training (``kind: train_reward``): the data plan, per-task evaluation, the loop;
- ``losses``: Diffusion-DPO for image and video latents, DPO (sigmoid, IPO, hinge), response log-probs;
- ``diffusion``: Diffusion-DPO for diffusers UNet (2D and 3D) pipelines (``kind: dpo``);
- ``vlm_dpo``: VLM DPO with TRL's DPOTrainer (``kind: dpo``, ``policy: vlm``).

The drivers that start the workers are in ``unireward.pipelines.train``."""
