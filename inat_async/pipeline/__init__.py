"""The harvest's stages: the pager pages the API into the state, feeders move pending photo
files into a bounded queue per host, the downloader's workers fetch them, and harvest.run_harvest
wires the stages together and writes the exports at the end."""
