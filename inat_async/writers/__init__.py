"""What is written from the resume store: one module per output.

Siblings, as img2dataset's writers are: the export's image folder, WebDataset shards,
Parquet table, credits and manifest.
"""
