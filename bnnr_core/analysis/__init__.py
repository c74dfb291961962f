"""The analyze engine and the task-independent parts of an analysis report.

* :mod:`bnnr_core.analysis.evaluation`: :class:`Evaluation`, the cached results of the one
  inference pass that every later step (task sections, failure detectors, XAI, data quality)
  reads.
* :mod:`bnnr_core.analysis.findings`: failure patterns grouped into findings, recommendations
  linked to them by id.
* :mod:`bnnr_core.analysis.summary`: the executive summary and the health score.
* :mod:`bnnr_core.analysis.engine`: :func:`analyze`, which sequences the steps through hooks.

Nothing here knows a task, a metric threshold or a saliency method: those live in plugins.
"""
