"""The config (ram.config): recipes fill what the command line leaves unset, in one resolve step; a given flag
wins; the model's defaults win over a RAM recipe."""

import dataclasses

from ram.config import RECIPES, Args, parse_args, resolve
from ram.losses import REWARDS


def test_the_catch_recipe_fills_what_the_command_line_leaves_unset():
    args = parse_args(["--task", "catch", "--hidden-size", "32"])
    assert args.hidden_size == 32  # given: it wins
    assert all(getattr(args, k) == v for k, v in RECIPES[("catch", None, None)].items() if k != "hidden_size")
    assert resolve(Args(task="catch")).core == "lstm" and resolve(Args(task="mnist28")).core == "rnn"
    assert resolve(Args(task="catch")).samples == 5_000_000
    assert resolve(Args(task="catch", recipe=False)).samples == 3_000_000
    assert resolve(Args(task="catch", model="ram", lr=0.01)).lr == 0.01


def test_a_recipe_is_the_task_s_for_its_glimpse_count_and_no_recipe_gives_the_plain_defaults():
    c60 = RECIPES[("cluttered60", None, None)]  # every glimpse count
    assert all(getattr(resolve(Args(glimpses=4)), k) == v for k, v in c60.items())
    assert resolve(Args(glimpses=4)).rollouts == 1 and resolve(Args(glimpses=8)).samples == 10_000_000
    assert resolve(Args(glimpses=8)).rollouts == 2
    # cluttered60 has 6 glimpses by default, and with 6 its recipe plays each canvas twice on half the images.
    c60_6 = resolve(Args())
    assert all(getattr(c60_6, k) == v for k, v in c60.items() if k != "samples")
    assert (c60_6.samples, c60_6.rollouts) == (5_000_000, 2) and resolve(Args(glimpses=6)).rollouts == 2
    assert parse_args(["--rollouts", "1"]).rollouts == 1  # a given flag wins here too
    # The 6-glimpse recipe's wider glimpse network; the others keep the paper's 128 units, and a given flag wins.
    assert c60_6.glimpse_hidden == 256 and resolve(Args(glimpses=6)).glimpse_hidden == 256
    assert resolve(Args(glimpses=4)).glimpse_hidden == resolve(Args(glimpses=8)).glimpse_hidden == 128
    assert parse_args(["--glimpse-hidden", "128"]).glimpse_hidden == 128
    plain = resolve(Args(recipe=False))
    assert (plain.core, plain.batch_size, plain.lr, plain.loc_hidden, plain.std_final, plain.lr_warmup,
            plain.start, plain.samples, plain.reward) == ("rnn", 128, 1e-3, 0, None, 0, "random", 3_000_000, "env")
    c100 = resolve(Args(task="cluttered100"))  # the same agent, trained on its own budget
    assert all(getattr(c100, k) == v for k, v in c60.items() if k != "samples") and c100.samples == 10_000_000
    t60 = resolve(Args(task="translated60"))  # and on the uncluttered canvas, on 8M images
    assert all(getattr(t60, k) == v for k, v in c60.items() if k != "samples") and t60.samples == 8_000_000
    # mnist28's recipe keeps the paper's RNN agent at batch 128 and changes its policy's training.
    m28 = resolve(Args(task="mnist28"))
    assert (m28.core, m28.batch_size, m28.start, m28.lr) == ("rnn", 128, "random", 1e-3)
    assert (m28.std, m28.std_final, m28.loc_hidden, m28.reward, m28.policy_core) == (0.2, 0.05, 128, "prob", True)
    assert m28.samples == 10_000_000
    # A flag given wins over the recipe; the model's own defaults win over a RAM recipe.
    args = parse_args(["--batch-size", "256", "--core", "rnn"])
    assert (args.batch_size, args.core, args.lr) == (256, "rnn", c60["lr"])
    assert parse_args(["--model", "soft"]).batch_size == 128
    # Random locations keep the rest of the recipe but have no policy for REINFORCE's gradient to route through.
    assert c60["policy_core"] and not plain.policy_core
    random = parse_args(["--policy", "random"])
    assert not random.policy_core and random.rollouts == 1 and random.core == "lstm"


def test_a_model_s_recipe_changes_its_task_s_for_that_model_alone():
    dram, ram = resolve(Args(task="pairs100", model="dram")), resolve(Args(task="pairs100"))
    assert (dram.g_size, ram.g_size) == (512, 256)
    assert (dram.samples, ram.samples, dram.loc_limit, ram.loc_limit) == (10_000_000, 5_000_000, 2.0, 0.0)
    # the rest of the task's recipe is shared
    assert (dram.rollouts, dram.core, dram.lr) == (ram.rollouts, ram.core, ram.lr)
    # a given value wins (0: the paper's policy), and random locations have no policy to bound
    assert parse_args(["--task", "pairs100", "--model", "dram", "--loc-limit", "0"]).loc_limit == 0.0
    assert resolve(Args(task="pairs100", model="dram", policy="random")).loc_limit == 0.0
    assert resolve(Args(task="pairs100", model="dram", recipe=False)).loc_limit == 0.0
    assert parse_args(["--task", "pairs100", "--model", "dram", "--g-size", "256"]).g_size == 256  # given wins
    assert resolve(Args(task="pairs100", model="dram", recipe=False)).g_size == 256
    assert resolve(Args(task="addition100", model="dram")).g_size == 512  # as the pairs agent it starts from
    assert resolve(Args(task="cluttered100", model="dram")).g_size == 256


def test_every_value_a_recipe_sets_is_one_it_can_set():
    # Only fields left None on the command line are filled by resolve: a recipe's key on a field with a plain
    # default would be ignored silently.
    settable = {f.name for f in dataclasses.fields(Args) if "default" in f.metadata}
    assert all(set(recipe) <= settable for recipe in RECIPES.values())


def test_the_default_learning_rate_depends_on_the_model_and_a_given_one_wins():
    assert parse_args(["--no-recipe"]).lr == 1e-3
    assert parse_args(["--model", "soft-glimpse"]).lr == 3e-4
    assert parse_args(["--model", "soft-glimpse", "--lr", "0.002"]).lr == 0.002


def test_the_reward_flag_offers_exactly_the_returns_the_loss_knows():
    # The flag's choices are the loss's own list: a return added to the loss is a choice of the flag.
    reward = {f.name: f for f in dataclasses.fields(Args)}["reward"]
    assert reward.metadata["choices"] == REWARDS


def test_the_glimpse_loss_is_for_ram_on_a_classification_and_not_negative():
    import pytest

    from ram.errors import UsageError

    assert parse_args(["--glimpse-loss", "0.5"]).glimpse_loss == 0.5
    for argv, message in ((["--glimpse-loss", "-1"], "must be >= 0"), (["--model", "cnn", "--glimpse-loss", "1"],
                          "applies to --model ram"), (["--task", "catch", "--glimpse-loss", "1"], "names none")):
        with pytest.raises(UsageError, match=message):
            parse_args(argv)


def test_the_loc_limit_reaches_both_glimpse_models_and_a_wrong_one_is_one_line():
    import pytest

    from ram.config import task_of
    from ram.errors import UsageError
    from ram.registry import spec

    for model in ("ram", "dram"):
        args = parse_args(["--task", "pairs100", "--model", model, "--loc-limit", "2"])
        built, config = spec(model).build(args, task_of(args), 10)
        assert config.loc_limit == 2.0 and built.location.limit == 2.0
    assert spec("ram").build(parse_args([]), task_of(parse_args([])), 10)[0].location.limit == 0.0  # the paper's
    for argv, message in ((["--loc-limit", "-1"], "a finite number >= 0, got -1"),
                          (["--loc-limit", "inf"], "a finite number >= 0, got inf"),
                          (["--model", "cnn", "--loc-limit", "2"], "bounds a learned location policy"),
                          (["--policy", "random", "--loc-limit", "2"], "bounds a learned location policy")):
        with pytest.raises(UsageError, match=message):
            parse_args(argv)
