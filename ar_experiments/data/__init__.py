"""Split files -> index of videos; clip sampling; PyAV decoding; transforms; batch samplers; the
LightningDataModule; the synthetic dataset's generator. Imports nothing else of the package: no models, no training."""
