"""Remote originals: origins, the fetcher and its guards, the source cache."""
