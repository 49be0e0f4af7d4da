"""The paper's equations 1-17, mapped to the book's labels, the code and the tests.

One row per numbered equation of Liu et al. (CVPR 2024): ``label`` is the book's displayed
equation for it, ``implemented_by`` the functions or classes that compute it (each one's
docstring names ``label`` with ``{ref}``), ``tests`` the pytest node ids that check it, and
``note`` what is uncertain or where the code departs from the paper. The book's equation map
page (``book/reference/equation_map.md``) shows this table (:func:`markdown_table`), and
``tests/test_equation_map.py`` checks every entry: the labels exist, the objects import and name
their label, the tests exist.

The paper's typeset equations were lost from every copy we could read, so the numbering is
inferred from where the prose refers to them (Sec. 2.1: Eqs. 1-5; Sec. 2.2.2: 6-11; Sec. 2.3:
12-13; Sec. 2.4.1: 14-16; Sec. 2.4.2: 17; Appendix A's Eqs. 18-20 restate 8, 9 and 11). Run
``python -m strdiff_edu.equations --write`` to refresh the table on the book page.
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Set, Tuple

from .locations import require_checkout


@dataclass(frozen=True)
class PaperEquation:
    number: int
    content: str
    label: str
    implemented_by: Tuple[str, ...]
    tests: Tuple[str, ...]
    related: Tuple[str, ...] = ()
    note: str = ""


EQUATIONS: Tuple[PaperEquation, ...] = (
    PaperEquation(
        1, "forward mean-reverting SDE of the texture", "eq-mr-sde",
        ("strdiff_edu.sde.MeanRevertingSDE", "strdiff_edu.sde.MeanRevertingSDE.drift"),
        ("tests/test_sde.py::test_euler_maruyama_simulation_matches_its_moments_and_converges_to_closed_form",
         "tests/test_sde.py::test_mean_reverts_to_eps_and_std_to_lambda"),
        related=("eq-sigma-theta", "eq-marginal"),
        note=r"The text after it defines $\theta_t$, $\sigma_t$, the constraint "
             r"$\sigma_t^2/\theta_t = 2\lambda^2$ and the Wiener process: the number is certain."),
    PaperEquation(
        2, "reverse-time SDE", "eq-reverse-sde",
        ("strdiff_edu.sde.MeanRevertingSDE.reverse_step",),
        ("tests/test_sde.py::test_reverse_step_formula_and_determinism",
         "tests/test_sde.py::test_score_from_noise_is_the_gaussian_score"),
        related=("eq-score-from-noise", "eq-reverse-em"),
        note="Simulated with Euler–Maruyama, the score taken from the predicted noise."),
    PaperEquation(
        3, r"negative log-likelihood of $y_{t-1}$ given $(y_t, y_0)$", "eq-nll",
        ("strdiff_edu.symbolic.nll_eq3",),
        ("tests/test_symbolic.py::test_eq4_solved_from_gradient_matches_textbook_and_gaussian_product",),
        note="Constants dropped."),
    PaperEquation(
        4, r"ideal reverse state $y^*_{t-1}$", "eq-ideal-reverse",
        ("strdiff_edu.sde.MeanRevertingSDE.ideal_reverse_state", "strdiff_edu.symbolic.derive_eq4"),
        ("tests/test_sde.py::test_eq4_equals_gaussian_product_posterior",
         "tests/test_sde.py::test_eq4_at_t1_returns_x0",
         "tests/test_symbolic.py::test_lambdified_eq4_equals_library"),
        note="The official code's training target; its author calls it the original objective."),
    PaperEquation(
        5, "training objective of the texture denoiser (IR-SDE)", "eq-training-loss",
        ("strdiff_edu.losses.reverse_matching_loss", "strdiff_edu.symbolic.l1_objective"),
        ("tests/test_checkpoint_losses.py::test_matching_loss_is_zero_for_the_noise_that_lands_on_the_ideal_state",
         "tests/test_checkpoint_losses.py::test_masked_l1_weights_the_hole",
         "tests/test_symbolic.py::test_training_gap_is_second_order"),
        related=("eq-predicted-mean", "eq-weighted-loss", "eq-clean-parameterization", "eq-clean-loss"),
        note="The paper's positive time weight is 1 in the official code (`--prediction noise`); the "
             "shipped networks use the weight 1/c_t, i.e. they predict the clean state and are trained "
             "with L1 on it (`strdiff_edu.losses.clean_matching_loss`, "
             "`tests/test_parameterization.py`). The hole weight 10 is the official code's. The texture "
             "target is Eq. 4, the structure's Eq. 10."),
    PaperEquation(
        6, "reverse transition rewritten with Bayes' rule under the structure", "eq-structure-bayes",
        ("strdiff_edu.symbolic.derive_eq11",),
        ("tests/test_symbolic.py::test_eq11_solution_equals_closed_form_and_remark3_split",
         "tests/test_symbolic.py::test_true_posterior_given_y0_is_eq4_and_ignores_the_structure"),
        related=("eq-true-posterior",),
        note="Typeset form lost. Ours is a factorisation under an assumed coupling model (a "
             "modelling choice); under the forward process itself the posterior given $y_0$ is "
             "Eq. 4. The paper's may condition differently."),
    PaperEquation(
        7, "the simplified, structure-conditioned transition", "eq-coupling",
        ("strdiff_edu.symbolic.coupling_mean",),
        ("tests/test_symbolic.py::test_eq11_reduces_to_eq4_when_the_structure_weight_vanishes",
         "tests/test_symbolic.py::test_eq11_equals_eq4_exactly_when_structure_agrees_with_texture",
         "tests/test_symbolic.py::test_coupling_model_matches_the_structure_mean_but_not_its_variance",
         "tests/test_symbolic.py::test_default_structure_weight_is_the_stationary_conditional_variance"),
        related=("eq-coupling-weight",),
        note=r"Lost; the prose says the texture is obtained from the structure and $y_0$. Our "
             "stand-in is the coupling likelihood of Part II, a modelling choice of this book: it "
             r"matches the structure's marginal mean, not its variance; $\omega = 1$ by default."),
    PaperEquation(
        8, "negative log-likelihood under the structure (Appendix Eq. 18)", "eq-nll-structure",
        ("strdiff_edu.symbolic.derive_eq11",),
        ("tests/test_symbolic.py::test_eq11_solution_equals_closed_form_and_remark3_split",),
        note="Ours: the negative log of the factorisation with our coupling term."),
    PaperEquation(
        9, "its gradient, set to zero (Appendix Eq. 19)", "eq-gradient-structure",
        ("strdiff_edu.symbolic.derive_eq11",),
        ("tests/test_symbolic.py::test_eq11_gradient_matches_the_written_form",),
        note="That Eq. 9 is the gradient is inferred: Appendix Eq. 19 is the gradient and the "
             "main text says 'since Eq. (19) is linear' just before Eq. 11."),
    PaperEquation(
        10, r"ideal reverse state $x^*_{t-1}$ of the structure", "eq-ideal-structure",
        ("strdiff_edu.symbolic.derive_eq10",),
        ("tests/test_symbolic.py::test_eq10_is_eq4_for_the_structure",
         "tests/test_structure.py::test_structure_pairs"),
        note=r"Eq. 4 with $y \to x$ and $\mu \to \mu_x$ (masked edges); numerically the same "
             "`MeanRevertingSDE.ideal_reverse_state` on the structure pair."),
    PaperEquation(
        11, "structure-guided ideal reverse state of the texture (Appendix Eq. 20)",
        "eq-structure-guided",
        ("strdiff_edu.sde.MeanRevertingSDE.structure_guided_reverse_state",
         "strdiff_edu.symbolic.derive_eq11"),
        ("tests/test_symbolic.py::test_library_eq11_against_high_precision_sympy_on_the_cosine_schedule",
         "tests/test_symbolic.py::test_eq11_at_t1_returns_y0_for_any_structure",
         "tests/test_symbolic.py::test_eq11_reduces_to_eq4_when_the_structure_weight_vanishes"),
        note="Not in the official code (its author: the structure condition 'turns' Eq. 4 into "
             "Eq. 11). Ours is derived in Part II; training uses it only with `--target eq11`."),
    PaperEquation(
        12, "spatially adaptive (de)normalisation of the texture features by the structure",
        "eq-spade",
        ("strdiff_edu.models.spade.SPADE",),
        ("tests/test_models.py::test_spade_is_positional_norm_when_gamma_and_beta_vanish",
         "tests/test_models.py::test_structure_map_changes_texture_output_and_trains_spade"),
        note="Positional normalisation across channels, as the official code."),
    PaperEquation(
        13, "overall training objective of the structure-guided texture denoiser", "eq-training-loss",
        ("strdiff_edu.losses.reverse_matching_loss", "strdiff_edu.losses.ideal_target"),
        ("tests/test_train.py::test_overfitting_one_sample_lowers_the_loss_tenfold",
         "tests/test_train.py::test_a_trained_texture_network_moves_toward_the_structure_it_is_given"),
        note="Eq. 5 with the structure as the network's input and Eq. 11 as target; the official "
             "code (and our default) keeps Eq. 4 as target."),
    PaperEquation(
        14, r"discriminator loss: real pair (texture at $t-1$) against fake pair (texture at $t$)",
        "eq-disc-adversarial",
        ("strdiff_edu.losses.discriminator_loss",),
        ("tests/test_checkpoint_losses.py::test_discriminator_loss_terms",),
        note="Written as the official code's softplus terms; the paper's form is lost."),
    PaperEquation(
        15, "triplet loss focusing on the unmasked region", "eq-disc-triplet",
        ("strdiff_edu.losses.discriminator_loss",),
        ("tests/test_checkpoint_losses.py::test_discriminator_loss_terms",),
        note="Margin 1 and the absolute difference on scalar logits, as PyTorch's "
             "TripletMarginLoss in the official code."),
    PaperEquation(
        16, "total discriminator loss", "eq-disc-total",
        ("strdiff_edu.losses.discriminator_loss",),
        ("tests/test_checkpoint_losses.py::test_discriminator_loss_terms",),
        note="Balance parameter 1 (paper and code); which term it weights is lost with the "
             "equation."),
    PaperEquation(
        17, "adaptive resampling: re-noise the structure, denoise it, re-guide the texture",
        "eq-adaptive-resampling",
        ("strdiff_edu.resampling.adaptive_resample", "strdiff_edu.sampling.StrDiffusionSampler"),
        ("tests/test_sampling.py::test_call_counts_match_the_formula_for_scripted_decisions",
         "tests/test_sampling.py::test_paper_rule_renoises_one_level_at_every_early_step_while_below_threshold",
         "tests/test_sampling.py::test_resampling_renoise_is_the_exact_transition_in_corrected_mode",
         "tests/test_sampling.py::test_official_mode_reproduces_each_quirk"),
        related=("eq-structure-guided-step",),
        note="The paper re-noises $x_{t-1} \\to x_t$ (one level) at early steps while the score is "
             "below a threshold (value unknown; `rule=\"paper\"`); the official code resamples on a "
             "fixed schedule, several levels, comparing scores (`rule=\"official\"`, the default). "
             "The paper's Eq. 17 holds both the noise-adding and the denoising formula."),
)


def book_labels(book: Optional[Path] = None) -> Set[str]:
    """Every MyST label defined in the book's pages (math ``:label:``, ``(label)=`` targets);
    ``book`` defaults to the source checkout's ``book/`` folder."""
    book = require_checkout("equations.book_labels()") / "book" if book is None else Path(book)
    labels: Set[str] = set()
    for page in sorted(book.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        labels |= set(re.findall(r"^:label:\s*(\S+)", text, flags=re.M))
        labels |= set(re.findall(r"^\((\S+)\)=\s*$", text, flags=re.M))
        labels |= set(re.findall(r"\$\$\s*\((eq-[\w-]+)\)", text))
    return labels


def markdown_table(labels: Optional[Set[str]] = None) -> str:
    """The table shown on the book's equation map page (MyST markdown). A label missing from
    ``labels`` (default: the book's) is shown as code, not as a reference the build would reject."""
    labels = book_labels() if labels is None else labels

    def ref(label: str) -> str:
        return f"{{eq}}`{label}`" if label in labels else f"`{label}` (not in the book yet)"

    def code(name: str) -> str:
        return f"`{name.replace('strdiff_edu.', '')}`"

    def test(nodeid: str) -> str:
        path, _, func = nodeid.partition("::")
        return f"`{Path(path).stem.replace('test_', '')}::{func}`" if func else f"`{path}`"

    rows = ["| Eq. | what | book | implemented by | checked by |", "|---|---|---|---|---|"]
    for eq in EQUATIONS:
        book = ref(eq.label)
        if eq.related:
            book += " (" + ", ".join(ref(r) for r in eq.related) + ")"
        rows.append(f"| {eq.number} | {eq.content} | {book} | "
                    f"{'<br>'.join(code(f) for f in eq.implemented_by)} | "
                    f"{'<br>'.join(test(t) for t in eq.tests)} |")
    notes = [f"- **Eq. {eq.number}.** {eq.note}" for eq in EQUATIONS if eq.note]
    return "\n".join(rows) + "\n\nNotes:\n\n" + "\n".join(notes) + "\n"


START, END = "<!-- equation-table:start -->", "<!-- equation-table:end -->"


def write_page(page: Path) -> bool:
    """Replace the table between the START and END markers of ``page``; True if it changed."""
    text = page.read_text(encoding="utf-8")
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    new = f"{head}{START}\n{markdown_table()}{END}{tail}"
    if new != text:
        page.write_text(new, encoding="utf-8")
    return new != text


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Print (or --write into the book) the equation map table.")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if args.write:
        page = require_checkout("equations --write") / "book" / "reference" / "equation_map.md"
        print(f"{page}: {'updated' if write_page(page) else 'already up to date'}")
    else:
        print(markdown_table(), end="")
