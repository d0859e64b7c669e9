/* adam_schedule.c: the paper's schedule experiment with Adam as the inner optimiser: a learning
 * rate, beta1 and beta2 per step and per layer-and-kind (2400 numbers) and 8 init scales of a
 * 784-50-50-50-10 tanh MLP on Fashion-MNIST, learned from exact hypergradients of Adam's
 * training (schedule_experiment.h); docs/results.md compares it with lr_schedule's momentum.
 *
 *   adam_schedule [--quick] [--out DIR] [--data DIR] [--iterations N] [--threads N] */
#include "schedule_experiment.h"

int main(int argc, char **argv)
{
    return schedule_experiment(argc, argv, "adam_schedule", REVL_OPTIM_ADAM);
}
