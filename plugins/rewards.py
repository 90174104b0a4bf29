"""Built-in plugin: the reward components (accuracy, format, bat, llm_judge, two baselines).

The components are imported inside the hook, which runs only when something asks
for rewards, so loading the plugin stays cheap.
"""

from __future__ import annotations

from codedance import hookimpl
from codedance.core.hookspecs import Register


@hookimpl
def register_rewards(register: Register) -> None:
    from codedance.rewards.bat import BATReward
    from codedance.rewards.components import (
        AccuracyReward,
        CallPenaltyReward,
        FormatReward,
        SuccessBonusReward,
    )
    from codedance.rewards.judge import JudgeReward

    for component in (
        AccuracyReward,
        FormatReward,
        BATReward,
        CallPenaltyReward,
        SuccessBonusReward,
        JudgeReward,
    ):
        register(component)
