"""The seed script (shared/seed/download-biodiversity-records-iNaturalist.md), runnable.

Kept as written: sequential paging with page=, per_page=200, order_by=created_at; requests and
pandas json_normalize; then three sequential urllib.request.urlretrieve calls per observation
(square, medium, original of the first photo); then a tab-separated CSV. Only what no longer
runs, or would reach the internet, is changed:

- the API base URL, the place and the output folder are arguments (``--base-url`` etc.);
- ``import requests`` (the seed imports ``from requests import request`` but calls
  ``requests.get``);
- ``json_normalize`` is imported from ``pandas`` and ``pd.concat`` replaces ``df.append``
  (``pandas.io.json.json_normalize`` and ``DataFrame.append`` were removed in pandas 2);
- the URL string the blog post broke over lines is joined.

    python benchmarks/seed_script.py --base-url http://127.0.0.1:8765/v1 --out /tmp/seed
"""

import argparse
import os
import urllib.request

import pandas as pd
import requests
from pandas import json_normalize

parser = argparse.ArgumentParser()
parser.add_argument("--base-url", default="https://api.inaturalist.org/v1")
parser.add_argument("--place", default="128892")
parser.add_argument("--out", default="/theFolderToSaveData")
args = parser.parse_args()

# Get all records for Parque Marinho Luiz Saldanha
outputFolder = args.out
placeID = args.place
if not os.path.exists(outputFolder):
    os.makedirs(outputFolder)
df = pd.DataFrame([])
iteraction = 0
dataSize = 1
while dataSize > 0:
    iteraction = iteraction + 1
    url = (
        args.base_url + "/observations?geo=true&identified=true&place_id=" + placeID + "&rank=species&"
        "order=desc&order_by=created_at&page=" + str(iteraction) + "&per_page=200"
    )
    response = requests.get(url)
    dictr = response.json()
    recs = dictr["results"]
    dataSize = len(recs)
    data = json_normalize(recs)
    if dataSize > 0:
        df = pd.concat([df, data])

# Save images to the folder
for x in range(0, len(df)):
    id = df["id"].values[x]
    imageURL = json_normalize(df["photos"].values[x])["url"].values[0]
    imageURLM = imageURL.replace("square", "medium")
    imageURLO = imageURL.replace("square", "original")
    urllib.request.urlretrieve(imageURL, outputFolder + "/" + str(id) + "Sq.jpg")
    urllib.request.urlretrieve(imageURLM, outputFolder + "/" + str(id) + "M.jpg")
    urllib.request.urlretrieve(imageURLO, outputFolder + "/" + str(id) + "O.jpg")

# Prepare pandas data.frame and export to csv
list(df.columns)
dfLatitude = df["location"].str.split(",", expand=True)[0]
dfLongitude = df["location"].str.split(",", expand=True)[1]
df1 = df[
    [
        "id",
        "taxon.name",
        "quality_grade",
        "time_observed_at",
        "species_guess",
        "license_code",
        "observed_on",
        "community_taxon_id",
    ]
]
df1 = pd.concat([df1, dfLongitude, dfLatitude], axis=1)
df1.columns = [
    "id",
    "taxon.name",
    "quality_grade",
    "time_observed_at",
    "species_guess",
    "license_code",
    "observed_on",
    "community_taxon_id",
    "Longitude",
    "Latitude",
]
df1.to_csv(outputFolder + "/dataFrame.csv", sep="\t", header=True)
