"""Print the check values of the functional core beside independent references.

Run: python examples/check_values.py
"""

import math

import torch

from xent_metrics.functional import binary_cross_entropy, multiclass_cross_entropy, multilabel_cross_entropy


def main() -> None:
    bce = binary_cross_entropy(torch.tensor([0.9, 0.3]), torch.tensor([1, 0]), input_format="probs")
    print(f"BCE  y=[1,0], p=[0.9,0.3]          {bce.item():.4f}  (hand: {-(math.log(0.9) + math.log(0.7)) / 2:.4f})")
    logits, labels = torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([[1, 0, 1]])
    per = multilabel_cross_entropy(logits, labels, average="none")
    mean = multilabel_cross_entropy(logits, labels)
    print(f"Multi-label BCE, logits [2,-1,0.5]  {mean.item():.4f}  per label {[round(v, 4) for v in per.tolist()]}")
    far = multiclass_cross_entropy(torch.tensor([[-200.0, 0.0]]), torch.tensor([0]))
    print(
        f"CCE, logit -200 on the true class    {far.item():.4f}  (F.cross_entropy: "
        f"{torch.nn.functional.cross_entropy(torch.tensor([[-200.0, 0.0]]), torch.tensor([0])).item():.4f}; "
        f"log(sigmoid) route: {-torch.log(torch.sigmoid(torch.tensor(-200.0))).item()})"
    )


if __name__ == "__main__":
    main()
