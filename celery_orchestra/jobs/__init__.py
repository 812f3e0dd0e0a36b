"""What a job is and where it comes from: definitions, states, the schedule codec and the
configuration readers (``beat_schedule`` and YAML files). Knows timings, not the store or beat.
"""
