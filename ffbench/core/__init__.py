"""The numerics every method shares: MNIST (data), the losses, the networks (models), the batch
and rate schedules, the optimizers, and the settings schema (settings) that names them all."""
