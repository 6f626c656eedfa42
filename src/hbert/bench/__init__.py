"""Speed measurements shipped with the command line (``hbert bench``)."""
