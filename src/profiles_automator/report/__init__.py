"""The report stage: results in people's terms, for a pull request, a job summary or a commit.

Takes validated PMR models and sync reports and gives text, markdown and JSON (`access_diff`,
`markdown`, pure), and the sync's result set on the synced commit (`commit_status`, the one
module here that talks to a server). Nothing here decides what a sync changes.
"""
