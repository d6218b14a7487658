"""Reading runs back: the results table and its views (table), its output formats (formats),
the studies' tables and choices (studies), and the figures (figures)."""
