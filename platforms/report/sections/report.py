"""The report: every section, in the order both renderings show them."""
from __future__ import annotations

from platforms.report.sections.accuracy import AccuracySections
from platforms.report.sections.blocks import Section
from platforms.report.sections.cost import CostSection
from platforms.report.sections.latency import LatencySection
from platforms.report.sections.method import MethodSection
from platforms.report.sections.phases import PhasesSection
from platforms.report.sections.runs import RunsSection
from platforms.report.sections.scaling import ScalingSection
from platforms.report.sections.scorecards import ScorecardSections
from platforms.report.sections.study import StudySections
from platforms.report.sections.summary import SummarySection
from platforms.report.sections.transfer import TransferSections


class Report(SummarySection, AccuracySections, ScalingSection, PhasesSection, TransferSections, LatencySection,
             CostSection, ScorecardSections, StudySections, RunsSection, MethodSection):
    """Report(store, alpha, root).build(): the sections; each class above holds one or a few of them and
    reads the runs through their shared base, context.ReportContext."""

    def build(self) -> list[Section]:
        self.sections = [self.summary(), self.time_accuracy(), self.scaling(), self.ablation(), self.pareto(), self.phases(),
                         self.transfer(), self.cold_transfers(), self.latency(), self.cost(), self.published(), *self.studies(), self.usability(), self.runs(),
                         self.method()]
        return self.sections
