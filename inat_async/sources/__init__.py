"""Sources of observations other than the API's pages (the open-data dumps)."""
