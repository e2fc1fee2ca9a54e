"""Knowledge bases: ingestion, the Chroma store, hybrid retrieval and cited answers."""
