"""What the notebooks narrate (sequence studies, the champion report, streaming, personalisation)
and the headless run of them all.
"""
