"""The PMR stage: files in, an immutable, validated model out.

Takes the bytes of one or more PMR files (already fetched by `sources`) and gives a `PMR` model
with groups and defaults expanded, or a `PMRInvalidError` whose problems each name the file, the
line, the column and the path in the document. No I/O beyond reading local paths on request.
"""
