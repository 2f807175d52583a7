"""The allow-list of scikit-learn estimators, preprocessing steps and metrics a TrainingRun may name.

Only these class paths can ever be imported by the trainer: a TrainingRun cannot make the
operator or its Jobs import arbitrary code. The CRD's enums are generated from these tuples.
"""

from __future__ import annotations

from typing import Literal

CLASSIFIERS = (
    "sklearn.linear_model.LogisticRegression",
    "sklearn.ensemble.RandomForestClassifier",
    "sklearn.ensemble.GradientBoostingClassifier",
    "sklearn.ensemble.HistGradientBoostingClassifier",
    "sklearn.tree.DecisionTreeClassifier",
    "sklearn.neighbors.KNeighborsClassifier",
    "sklearn.svm.SVC",
    "sklearn.naive_bayes.GaussianNB",
    "sklearn.dummy.DummyClassifier",
)
REGRESSORS = (
    "sklearn.linear_model.LinearRegression",
    "sklearn.linear_model.Ridge",
    "sklearn.linear_model.Lasso",
    "sklearn.ensemble.RandomForestRegressor",
    "sklearn.ensemble.GradientBoostingRegressor",
    "sklearn.ensemble.HistGradientBoostingRegressor",
    "sklearn.tree.DecisionTreeRegressor",
    "sklearn.neighbors.KNeighborsRegressor",
    "sklearn.svm.SVR",
    "sklearn.dummy.DummyRegressor",
)
PREPROCESSORS = (
    "sklearn.preprocessing.StandardScaler",
    "sklearn.preprocessing.MinMaxScaler",
    "sklearn.preprocessing.RobustScaler",
    "sklearn.decomposition.PCA",
)
CLASSIFICATION_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc")
REGRESSION_METRICS = ("rmse", "mae", "r2")
# Metrics where smaller is better; every other metric is better when larger.
LOWER_IS_BETTER = frozenset({"rmse", "mae"})
# Classifiers that give probabilities (and so roc_auc) only when a parameter says so: scikit-learn's SVC
# has no predict_proba unless `probability: true`; every other allow-listed classifier always has one.
PROBABILITIES_ONLY_WITH = {"sklearn.svm.SVC": "probability"}

EstimatorName = Literal[CLASSIFIERS + REGRESSORS]  # type: ignore[valid-type]
PreprocessorName = Literal[PREPROCESSORS]  # type: ignore[valid-type]
MetricName = Literal[CLASSIFICATION_METRICS + REGRESSION_METRICS]  # type: ignore[valid-type]


def task_of(estimator: str) -> str:
    """`classification` or `regression`, from an allow-listed estimator's class path."""
    if estimator in CLASSIFIERS:
        return "classification"
    if estimator in REGRESSORS:
        return "regression"
    raise ValueError(f"estimator {estimator!r} is not in the allow-list")
