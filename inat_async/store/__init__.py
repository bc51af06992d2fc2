"""Where a harvest's truth is kept: OUT/harvest.sqlite (state), which alone holds SQL."""
