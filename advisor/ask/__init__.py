"""`tunewise ask`: a branching questionnaire that ends in a recommendation, saved files and (optionally) a run."""
