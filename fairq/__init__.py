"""fairq: a fair virtual waiting room and paired-appointment allocation engine."""
