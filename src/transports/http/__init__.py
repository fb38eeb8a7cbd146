"""Plain HTTP: the page (the static site); later health and metrics."""
