"""Chroma operations: collections, embedding deltas, batched writes, canonical digest, snapshots.

Filled by the projection and snapshot issues; the only package besides ``projections`` that
imports chromadb.
"""
