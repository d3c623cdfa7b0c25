"""Monte Carlo campaigns of the LTD-1 mission on Dask, replay sets and model qualification.

:mod:`.cases` names every case (seed sequence, key), :mod:`.worker` flies one on a
Dask worker with per-worker onnxruntime sessions, :mod:`.store` keeps finished
cases on disk so a run resumes, :mod:`.runner` drives a cluster, :mod:`.report`
aggregates, :mod:`.replays` replays recordings, :mod:`.contract` and
:mod:`.qualify` judge a contributed model against the flight baseline. Ground
side only: ``flightai`` never imports this package.
"""

from hil.campaign.cases import CampaignSpec, CaseSpec
from hil.campaign.store import ResultsStore

__all__ = ["CampaignSpec", "CaseSpec", "ResultsStore"]
