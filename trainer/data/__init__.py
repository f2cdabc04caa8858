"""Datasets: the on-disk layouts the trainer reads, the decode-once cache, and device-resident batches."""
