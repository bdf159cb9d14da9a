"""The data pipeline: social-media connectors, the image store, dataset loaders and snapshots.

    aidetect ingest --source mastodon --tag aiart --limit 200   # collect (resumable, idempotent)
    aidetect data import --format cifake /data/cifake           # load a labelled data set
    aidetect data snapshot                                      # freeze a versioned training manifest
    aidetect data stats

Modules, one job each:
    objects.py      content-addressed image bytes (local directory or S3)
    hashing.py      sha256 and perceptual hashes, as ingest and the service file images
    db.py           SQLAlchemy tables; migrations/ holds their Alembic history
    store.py        the store API (metadata + objects) that ingest, loaders and the service use
    connectors/     one module per platform behind one interface
    ingest.py       fetch -> check -> dedupe -> quarantine -> store, page by page
    loaders.py      CIFAKE, COCOFake and manifest layouts -> the same rows
    snapshots.py    sticky splits, manifest CSV + JSON sidecar, MLflow dataset input
"""
