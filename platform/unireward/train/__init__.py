"""Judge and policy training (issue 4 and 5). So far: the judge's training data (``data``)."""
