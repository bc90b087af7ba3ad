"""annotation_server package."""
