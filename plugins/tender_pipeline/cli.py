"""``python -m tender_pipeline``: one-off runs outside Airflow, on the same stage functions."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime

from tender_pipeline import pipeline
from tender_pipeline.errors import USER_ERRORS
from tender_pipeline.settings import get_settings
from tender_pipeline.sources import is_s3
from tender_pipeline.staging import StagingWriteError
from tender_pipeline.store import ChromaUnavailableError


def _s3_client():
    import boto3

    return boto3.client("s3")


def _print_summary(summary: dict) -> None:
    keys = ("files", "rows_read", "valid", "quarantined", "duplicates", "unchanged",
            "enriched", "embedded", "upserted", "inserted", "updated", "collection_count")
    width = max(len(k) for k in keys)
    for key in keys:
        print(f"{key:<{width}}  {summary.get(key)}")
    print(f"{'seconds':<{width}}  {json.dumps(summary['seconds'])}")
    for reason in summary.get("quarantine_reasons", []):
        print(f"  quarantined: {reason['rows']} × {reason['reason']}")
    print(f"{'staging':<{width}}  {summary['staging_dir']}")


def ingest(args: argparse.Namespace) -> int:
    settings = get_settings()
    run_id = "cli__" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    summary = pipeline.run_all(
        settings, run_id, source=args.source, limit=args.limit, force=args.force,
        profile=args.profile, s3_client=_s3_client() if is_s3(args.source) else None,
    )
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    return 0


def maintain(args: argparse.Namespace) -> int:
    """Retire notices past retention (freeing their Chroma slots), prune staging (what tender_maintenance runs)."""
    from tender_pipeline import lifecycle, staging_retention

    settings = get_settings()
    summary = {"retire": lifecycle.retire_expired(settings),
               "staging": staging_retention.prune(settings)}
    print(json.dumps(summary, indent=2))
    return 0


def prune_staging(args: argparse.Namespace) -> int:
    """Delete run folders past STAGING_RETENTION_DAYS and kept records no longer live."""
    from tender_pipeline import staging_retention

    print(json.dumps(staging_retention.prune(get_settings()), indent=2))
    return 0


def recover(args: argparse.Namespace) -> int:
    """Rebuild a lost disk's store from what remains (the lexical index, or staging and its ledger)."""
    from tender_pipeline import recover as recovering

    settings = get_settings()
    if args.store == "lexical":
        summary = recovering.lexical(settings)
    elif args.store == "chroma":
        summary = recovering.chroma(settings)
    else:
        before = datetime.fromisoformat(args.ingested_before) if args.ingested_before else None
        if before is not None and before.tzinfo is None:
            before = before.replace(tzinfo=UTC)
        summary = recovering.staging_disk(settings, s3_client=_s3_client() if is_s3(settings.incoming_uri) else None,
                                          ingested_before=before)
    print(json.dumps(summary, indent=2))
    return 0


def rebuild(args: argparse.Namespace) -> int:
    """Rebuild both stores from the staged runs (Chroma holds no cards to re-index the lexical index from)."""
    from tender_pipeline import rebuild as rebuilding

    summary = rebuilding.from_staging(get_settings())
    print(json.dumps(summary, indent=2))
    return 0


def database(args: argparse.Namespace) -> int:
    """Migrate DATABASE_URL to head (what the API and the alerts DAG also do on start) or show its revision."""
    from tender_pipeline.db import current_revision, make_engine, redacted, upgrade

    url = get_settings().database_url
    try:
        engine = make_engine(url)
        revision = upgrade(engine) if args.action == "upgrade" else current_revision(engine)
    except Exception as exc:  # one line naming the database, never its password
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        print(f"error: database {redacted(url)}: {reason}", file=sys.stderr)
        return 2
    print(f"{redacted(url)} at revision {revision or 'none'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tender_pipeline", description=__doc__,
        epilog="exit status: 0 done, 2 bad input or configuration, 3 Chroma unreachable or staging full/"
               "not writable (retry later)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ingest", help="ingest a file, folder, s3://, http(s):// or ocds+http(s):// source")
    p.add_argument("source", help="path or URI of a batch file (CSV, Excel, OCDS JSON) or folder, or an OCDS API URL")
    p.add_argument("--limit", type=int, default=None, help="read at most N rows")
    p.add_argument("--force", action="store_true", help="re-enrich and re-embed unchanged records")
    p.add_argument("--profile", default=None, help="column-mapping profile (default: detect)")
    p.add_argument("--json", action="store_true", help="print the full run summary as JSON")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(run=ingest)
    m = sub.add_parser("maintain", help="retire notices past RETENTION_DAYS (their Chroma slots are reused); "
                                        "prune staging")
    m.add_argument("-v", "--verbose", action="store_true")
    m.set_defaults(run=maintain)
    ps = sub.add_parser("prune-staging", help="delete run folders past STAGING_RETENTION_DAYS and kept records of "
                                               "notices no longer live (the ledger stays)")
    ps.add_argument("-v", "--verbose", action="store_true")
    ps.set_defaults(run=prune_staging)
    rc = sub.add_parser("recover", help="a lost disk: rebuild the lexical index (from its published copy or "
                                        "staging), Chroma (its vectors, from staging) or staging (from the "
                                        "stores and INCOMING_URI)")
    rc.add_argument("store", choices=["lexical", "chroma", "staging"], help="the store whose disk was lost")
    rc.add_argument("--ingested-before", default=None, metavar="ISO_TIME",
                    help="staging: batch files that arrived before this time (UTC unless given) were all ingested; "
                         "claim them in the ledger even where a later batch changed their notices")
    rc.add_argument("-v", "--verbose", action="store_true")
    rc.set_defaults(run=recover)
    r = sub.add_parser("rebuild", help="rebuild both stores from staging (a schema change of the lexical index)")
    r.add_argument("--from", dest="source", choices=["staging"], default="staging",
                   help="staging: replay every live notice kept in staging into a fresh collection and lexical "
                        "index (the only source: Chroma holds ids and vectors only)")
    r.add_argument("-v", "--verbose", action="store_true")
    r.set_defaults(run=rebuild)
    d = sub.add_parser("db", help="the saved-search/alerts database at DATABASE_URL")
    d.add_argument("action", choices=["upgrade", "current"], help="migrate to head, or show the revision")
    d.add_argument("-v", "--verbose", action="store_true")
    d.set_defaults(run=database)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ChromaUnavailableError, StagingWriteError) as exc:  # passing faults: the same command works later
        print(f"error: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
