"""The knowledge core: parse the collection into entries, index them in Chroma, and answer questions.

This is the public API that the chat front-ends (`bot/`) use; everything else is internal.
"""

from knowledge.base import Health, IngestReport, KnowledgeBase
from knowledge.browse import Section, SectionTree, section_id
from knowledge.entry import Entry, Link, SourceRef
from knowledge.errors import (
    EmbedderUnavailable,
    IngestLocked,
    KnowledgeError,
    KnowledgeUnavailable,
    MassRemoval,
    SettingsError,
    StorageError,
)
from knowledge.filters import Where, section_key
from knowledge.lexical import tokenize
from knowledge.logs import RateLimitedLog, configure_logging
from knowledge.lookup import Identifier, Lookup, arxiv_id, identifiers_in, without_identifiers
from knowledge.neighbours import Neighbour
from knowledge.normalize import detect_lang, printable, question_lang, without_escapes
from knowledge.parse.summary import blurb
from knowledge.ranking import Hit
from knowledge.reader import StoreStats
from knowledge.search import SearchResult
from knowledge.seen import Digest, NewEntry
from knowledge.settings import Settings, check_sources, load_settings
from knowledge.source_spec import SourceSpec
from knowledge.sync import SourceStatus, SourceSync, SyncReport
from knowledge.urls import without_tracking
from knowledge.writer import IngestSummary

__all__ = [
    "Digest",
    "EmbedderUnavailable",
    "Entry",
    "Health",
    "Hit",
    "Identifier",
    "IngestLocked",
    "IngestReport",
    "IngestSummary",
    "KnowledgeBase",
    "KnowledgeError",
    "KnowledgeUnavailable",
    "Link",
    "Lookup",
    "MassRemoval",
    "Neighbour",
    "NewEntry",
    "RateLimitedLog",
    "SearchResult",
    "Section",
    "SectionTree",
    "Settings",
    "SettingsError",
    "SourceRef",
    "SourceSpec",
    "SourceStatus",
    "SourceSync",
    "StorageError",
    "StoreStats",
    "SyncReport",
    "Where",
    "arxiv_id",
    "blurb",
    "check_sources",
    "configure_logging",
    "detect_lang",
    "identifiers_in",
    "load_settings",
    "printable",
    "question_lang",
    "section_id",
    "section_key",
    "tokenize",
    "without_escapes",
    "without_identifiers",
    "without_tracking",
]
