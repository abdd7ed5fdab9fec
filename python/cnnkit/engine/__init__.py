"""The model engine, as Keras 3's: symbolic tensors and the Node each layer call records
(symbolic.py), the graph a model runs forward and backward (graph.py), and the model classes
built on it: Model and its subclassed form (model.py), Functional (functional.py) and
Sequential (sequential.py), which builds the same graph."""
