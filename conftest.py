"""Let nbval run the book's jupytext MyST notebooks (book/**/*.md) directly, without .ipynb copies.

nbval only collects ``*.ipynb``; here a ``.md`` file whose front matter declares a
``kernelspec`` is read with jupytext and handed to nbval's collector.
"""
import jupytext
import nbval.plugin as nbval_plugin


def _is_notebook(path) -> bool:
    if path.suffix != ".md":
        return False
    head = path.read_text(encoding="utf-8")[:1500]
    return head.startswith("---") and "kernelspec:" in head


class JupytextNotebook(nbval_plugin.IPyNbFile):
    def collect(self):
        real_read = nbval_plugin.nbformat.read
        nbval_plugin.nbformat.read = lambda fp, as_version=4: jupytext.read(fp)
        try:
            yield from super().collect()
        finally:
            nbval_plugin.nbformat.read = real_read


def pytest_collect_file(file_path, parent):
    opt = parent.config.option
    if (getattr(opt, "nbval", False) or getattr(opt, "nbval_lax", False)) and _is_notebook(file_path):
        return JupytextNotebook.from_parent(parent, path=file_path)


# ----------------------------------------------------------------------------- test tiers
#: Tests that take more than ~10 s each on a 2-core machine (trainings, subprocess runs, the book
#: build, the browser). `pytest -m "not slow and not notebook"` leaves them out: the fast tier.
SLOW_TESTS = {
    "test_train.py": {"test_a_trained_texture_network_moves_toward_the_structure_it_is_given",
                      "test_overfitting_one_sample_lowers_the_loss_tenfold", "test_ddp_two_processes_on_cpu"},
    "test_gpu_train.py": {"test_gpu_training_script_writes_a_loadable_weights_folder_and_resumes"},
    "test_export_safety.py": {"test_export_refuses_untrained_and_existing_weights"},
    "test_evaluate_demo.py": {"test_demo_runs_end_to_end_in_the_tiny_profile"},
    "test_cost_quality.py": {"test_counted_flops_of_a_cheap_sample_match_the_formula",
                             "test_strdiff_cheap_samples_end_to_end_at_tiny",
                             "test_training_a_variant_records_and_reloads_its_shape",
                             "test_cheap_preset_is_within_the_flops_budget"},
    "test_book.py": {"test_book_builds_without_errors_or_warnings"},
    "test_fast.py": {"test_benchmark_runs_and_reports", "test_torch_compile_matches_eager"},
    "test_packaging.py": {"test_the_wheel_carries_the_cpu_weights_within_the_size_limit",
                          "test_the_installed_package_finds_its_weights_and_inpaints_from_another_folder"},
    "test_equation_map.py": {"test_api_reference_is_deterministic_and_covers_every_module"},
    "test_symbolic.py": {"test_eq11_solution_equals_closed_form_and_remark3_split",
                         "test_eq11_gradient_matches_the_written_form",
                         "test_eq11_equals_eq4_exactly_when_structure_agrees_with_texture"},
    "test_site.py": "*",
}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than ~10 s (left out of the fast tier)")
    config.addinivalue_line("markers", "notebook: a book chapter executed by nbval")


def pytest_collection_modifyitems(config, items):
    import pytest

    for item in items:
        if isinstance(item.parent, JupytextNotebook) or isinstance(item, JupytextNotebook):
            item.add_marker(pytest.mark.notebook)
            continue
        slow = SLOW_TESTS.get(item.path.name)
        if slow == "*" or (slow and getattr(item, "originalname", item.name) in slow):
            item.add_marker(pytest.mark.slow)
