"""Our Adam steps as torch.optim.Adam does, bit for bit, and its state continues torch's (that no run imports
torch._dynamo any more is checked in test_speed_paths.py)."""
import io

import pytest
import torch

from pretrain.training.adam import Adam


def model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))


def groups(net, weight_decay):
    """Two groups at other rates, weight decay on the first only (as the trainer's and fine-tuning's)."""
    return [{"params": list(net[0].parameters()), "lr": 0.01, "weight_decay": weight_decay, "name": "bottom"},
            {"params": list(net[2].parameters()), "lr": 0.003}]


def train(net, optimizer, steps, seed=1):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x, y = torch.randn(16, 7, generator=generator), torch.randint(3, (16,), generator=generator)
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_steps_equal_torch_adam_bit_for_bit(foreach, weight_decay):
    ours, theirs = model(), model()
    train(ours, Adam(groups(ours, weight_decay)), 30)
    train(theirs, torch.optim.Adam(groups(theirs, weight_decay), foreach=foreach), 30)
    for mine, reference in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(mine, reference)


def test_a_state_written_by_torch_adam_continues_here_as_in_torch():
    ours, theirs = model(), model()
    reference = torch.optim.Adam(groups(theirs, 0.01))
    train(theirs, reference, 10)
    ours.load_state_dict(theirs.state_dict())
    mine = Adam(groups(ours, 0.01))
    mine.load_state_dict(reference.state_dict())
    train(ours, mine, 10, seed=2)
    train(theirs, reference, 10, seed=2)
    for got, expected in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(got, expected)


def test_its_state_loads_with_weights_only_and_resumes_bit_for_bit():
    straight, resumed = model(), model()
    optimizer = Adam(groups(straight, 0.01))
    train(straight, optimizer, 5)
    buffer = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "net": straight.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    assert saved["optimizer"]["param_groups"][0]["name"] == "bottom"
    resumed.load_state_dict(saved["net"])
    again = Adam(groups(resumed, 0.01))
    again.load_state_dict(saved["optimizer"])
    train(straight, optimizer, 5, seed=3)
    train(resumed, again, 5, seed=3)
    for got, expected in zip(resumed.parameters(), straight.parameters()):
        assert torch.equal(got, expected)


def test_a_state_of_other_groups_is_refused():
    with pytest.raises(ValueError, match="groups of"):
        Adam(groups(model(), 0.0)).load_state_dict({"state": {}, "param_groups": [{"params": [0, 1, 2]}]})

