"""The sources stage: where the PMR lives in, PMR files at one revision out.

Takes a `Source` (a GitHub repository, a repository on any git host, or an HTTPS URL) and
credentials and gives the PMR files read at one commit, with the revision that names them.
Every failure is a `FetchError` worded for the administrator; nothing here parses YAML or knows
the PMR's meaning.
"""
