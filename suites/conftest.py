"""The certification suites. The harness plugin (harness.plugin) is loaded by its pytest11 entry point.

Each module checks one requirement group of ev-energy-requirements.md; each test carries
@pytest.mark.requirement(ID) and cites its spec clause (and OCTT case where one matches).
"""
