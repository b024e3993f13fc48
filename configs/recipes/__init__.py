"""One config per published table row we target (the MRRNet paper's Table 1, x8).

Each file's docstring is the recipe: the commands, the expected number of
steps, the hardware, and the paper's figures (PAPER in the file). See
README "Reproduce the paper".
"""
