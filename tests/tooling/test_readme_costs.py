"""The README's "What it costs": the cost model's figures on the last make bench's counts, kept in step."""

from scripts.lab import cost_model, readme_costs


def test_the_readme_section_is_the_cost_models_on_the_committed_counts():
    readme = readme_costs.README.read_text()
    section = readme[readme.index(readme_costs.BEGIN) + len(readme_costs.BEGIN) : readme.index(readme_costs.END)]
    assert section.strip() == readme_costs.render(readme_costs.stored_counts())


def test_the_figures_agree_with_the_cost_model():
    counts = readme_costs.stored_counts()
    text = readme_costs.render(counts)
    idle = cost_model.idle_costs(counts)
    assert f"${idle['visible'].total:.2f} per million connection-minutes on a visible page" in text
    month = cost_model.monthly(counts, 100_000, 10)
    assert f"| 100,000 | 10 | ${month['events'] + month['visible']:,.0f} |" in text
    assert f"| 1 | ${cost_model.per_event(counts, 1).total * 1e6:,.2f} |" in text


def test_only_the_section_between_the_markers_is_rewritten():
    readme = f"# Title\n\nbefore\n{readme_costs.BEGIN}\nold figures\n{readme_costs.END}\nafter\n"

    rewritten = readme_costs.updated(readme, "new figures")

    assert rewritten == f"# Title\n\nbefore\n{readme_costs.BEGIN}\nnew figures\n{readme_costs.END}\nafter\n"
