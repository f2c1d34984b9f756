"""ContentAligner: content embeddings aligned to the item space a ranker learned."""
