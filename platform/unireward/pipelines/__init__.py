"""Ray drivers: curate and score on Ray Data (train_reward and dpo on Ray Train land later).
The only place, with serve/, where the package imports Ray."""
