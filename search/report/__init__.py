"""What a study shows: the progress display, the report's header and formats, HTML, plots."""
