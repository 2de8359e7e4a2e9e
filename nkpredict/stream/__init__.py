"""Scoring files of any size in bounded memory: row blocks, chunked readers, jobs and writers."""
