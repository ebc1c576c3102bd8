"""Curate data sets into new folders: exact and MinHash-LSH near dedup (``dedup``,
``minhash``), SemDeDup and D4 (``semantic``), perplexity filtering (``perplexity``), and the
same over Parquet shards locally or on Ray Data (``shards``)."""
