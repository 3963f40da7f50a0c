"""Where observations and photos come from: the :class:`Source` seam and its members.

::

    sources/
      base.py   the Source protocol, ObservationCount, the taxon choice (choose_taxon)
      api.py    ApiSource: the iNaturalist v1 API through the paced InatClient

The pipeline and the dry run consume a :class:`Source` without knowing which one.
A new source (the Open Data tables and bucket next) is a sibling module that
implements the protocol; see :mod:`inat_async.sources.base` for the contract.
"""

from .api import ApiSource
from .base import ObservationCount, Source, TaxonChoice, choose_taxon

__all__ = ["ApiSource", "ObservationCount", "Source", "TaxonChoice", "choose_taxon"]
