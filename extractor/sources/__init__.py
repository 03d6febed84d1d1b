"""Where pages come from: HTTP (fetcher, paginators, auth) and dump files (readers in dumps/)."""
